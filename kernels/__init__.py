"""Kernels (installed as gpudedup.kernels): numba CPU kernels, their numba.cuda twins, and the
Pillow-exact resize / DCT tables both use. Nothing here knows of files, splits or reports."""
