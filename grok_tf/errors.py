"""The error every stage raises for a wrong spec or the data it names.

It lives below every module that reads user input (`grok_tf.spec.loader`,
`grok_tf.io.text_files`, the sources), so none of them imports another for
it; `grok_tf.spec.loader.SpecError` is the same class.
"""


class SpecError(ValueError):
    """A data spec (or the data it names) is wrong; the message says where."""
