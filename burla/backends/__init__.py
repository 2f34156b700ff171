"""Implementations of the four protocols in burla.core.protocols, one package per backend."""
