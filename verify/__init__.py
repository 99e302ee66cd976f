"""The verifier: runs strangers' training scripts without being harmed or fooled by them.

Modules:
- sandbox: BubblewrapLauncher (a model.harness Launcher) and sandbox_available()
- stats: decide(), the verdict rule over paired per-seed metrics (its docstring is the rule)
- check: run_check(), the one paired check (verifiers and the contributor's local check) -> CheckResult;
  make_launcher(), the sandbox for an arena's device
- attest: verify_proposal(), seeds from the verifier's signature, a signed Attestation
- calibrate: neutral perturbations for calibrating margins and testing seed grinding
- errors: VerifyError and the situations in which a machine cannot check at all

Nothing here imports torch at import time; the harness loads it in the worker.
"""
