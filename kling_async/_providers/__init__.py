"""Wire codecs: the only code that knows paths, field names and envelopes."""
