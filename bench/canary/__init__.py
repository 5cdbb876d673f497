"""The canary judgement benchmark's modules; bench/canary_judgement.py is its command line
and its docstring the model."""
