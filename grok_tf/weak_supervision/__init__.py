"""Weak supervision: labels for unlabelled photos, from pretrained models.

GrokNet learns from photos nobody labelled by pseudo-labelling the objects
a detector finds in them. `detectors/` holds the object-detector interface
and its registry: a `Detector` turns a uint8 photo into `Detection`s
(normalised box, score, class name), filtered by `DetectorOptions`, and
`crop` cuts each detected object out of the photo. Built in: the whole
image (`whole`), a TensorFlow Lite SSD (`tflite:PATH`) and a TensorFlow
Object Detection API SavedModel (`saved_model:PATH`), chosen by
`make_detector`.

The flow of `grok-tf pseudo-label` (`pseudo_label.py`):

1. `gallery.py`: the labelled images crops are compared with (the run's
   training photos and catalogue images of an id head, or a given list);
2. `crops.py`: detect the objects of each unlabelled photo, write each as
   a JPEG;
3. `pseudo_label.py`: embed crops and gallery with the run's model; each
   crop takes the product of its nearest labelled image (cosine distance);
4. `threshold.py`: accept crops under a distance threshold, given or
   chosen for a precision measured on crops of a labelled split.

The output list trains as a `pseudo_labels` dataset
(`grok_tf.data.sources.pseudo_labels`) with its own images per batch and
a `loss_weight` below 1.

Importing this package loads nothing heavy (no TensorFlow): each module
loads what it needs when it is used.
"""
