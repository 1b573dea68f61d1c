"""Example implementations to run the suite on: deliberately wrong callbacks it must catch."""
