"""cbdsl: training policies written as rules, compiled into Keras callbacks."""
