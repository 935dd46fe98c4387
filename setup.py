# For tools that still run setup.py directly; setuptools reads the metadata from pyproject.toml.
from setuptools import setup

setup()
