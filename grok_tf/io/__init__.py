"""Files in and out, for every stage: nothing half-written, nothing trusted.

- `atomic_files`: writes that publish whole or not at all (files, folders,
  Keras models, numbered SavedModel versions), safe against crashes and
  concurrent writers;
- `text_files`: every text input (UTF-8 lists, CSV tables, specs), with
  errors naming the file and line.
"""
