"""The shipped data specs, installed as `grok_tf.data_specs` package data."""
