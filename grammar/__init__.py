"""The cbdsl grammar (cbdsl.lark), shipped inside the package."""
