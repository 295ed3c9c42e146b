"""Stage 2, data: from a spec's datasets to mixed, labelled tf.data batches.

- `sources`: each dataset source's reader (image lists, folders, tag CSVs,
  tfds, the synthetic catalogue) -> `Split`s of images and labels;
- `images`: decoding within a pixel budget, augmentation, resizing;
- `batch_mixer`: a fixed number of images of each dataset in every batch,
  with a label mask per head;
- `query_mining`: search-query tags mined from product texts;
- `query_log`: search-query labels from interaction logs;
- `synthetic/`: the embedded default dataset, a generated catalogue.
"""
