"""Weak supervision: labels for unlabelled photos, from pretrained models.

GrokNet learns from photos nobody labelled by pseudo-labelling the objects
a detector finds in them. `detectors/` holds the object-detector interface
and its registry: a `Detector` turns a uint8 photo into `Detection`s
(normalised box, score, class name), filtered by `DetectorOptions`, and
`crop` cuts each detected object out of the photo. Built in: the whole
image (`whole`), a TensorFlow Lite SSD (`tflite:PATH`) and a TensorFlow
Object Detection API SavedModel (`saved_model:PATH`), chosen by
`make_detector`.

Importing this package loads nothing heavy (no TensorFlow): each module
loads what it needs when it is used.
"""
