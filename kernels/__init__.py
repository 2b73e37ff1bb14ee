"""Triton kernels of fastgram and their launchers, installed as
``fastgram.kernels``: no autograd and no operator registration here (the
``triton`` backend, :mod:`fastgram.backends.triton`, registers them).
Importing any module of this package imports triton."""
