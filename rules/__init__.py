"""The built-in rule library: Keras callbacks written as cbdsl rule files."""
