"""The parts of :func:`fastgram.patch`: which modules follow a protocol
fastgram can take over (``protocols``), the numerical check before a swap
(``probe``), why other norm-like modules are left (``norm_like``), and the
report (``report``). ``fastgram/patch.py`` puts them together."""
