"""Compile tests of the CUDA kernels (a package, so its conftest and modules get unique names)."""
