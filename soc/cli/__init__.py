"""SOC's command lines as importable modules, each with ``main(argv=None) -> int``; installed as the console
scripts ``soc-eval-jf`` and ``soc-convert-checkpoint`` (the scripts in ``tools/`` call the same functions)."""
