"""The GPU suite: every GPU figure of the benchmarks in one prepared command, one results file, under 8 minutes.

Made for a session lent one GPU for a short while: ``bash benchmarks/gpu_suite.sh`` runs five sections, each part in
its own time budget (``budget``: a part that overruns is stopped and recorded as such, keeping the repeats it
finished), and writes ``results.json`` and its markdown rendering ``results.md`` into a fresh folder, rewritten after
every part so a run that is killed still leaves what it measured. A failing part records its error line; the others
run on. The sections (``sections/``): parity of transferlab's Lightning path with a hand-written loop, training
throughput and MFU, feature extraction, data loading (``data.on_device`` against CPU workers), and DANN against
source only; the goals each answers are in ``goals``.

Every model is random init (``model.weights=none``): throughput does not depend on weight values, and nothing is
downloaded. ``--dry-run`` runs every section on the CPU at tiny sizes (ResNet-18 at 32 px, a few steps, fp32, compile
recorded as skipped) through the same code and writes the same file shape marked ``"dry_run": true``: a smoke run,
never a GPU figure. Without ``--dry-run`` a machine without CUDA is refused (``cli``).

    bash benchmarks/gpu_suite.sh                         # on a GPU machine: outputs/benchmarks/gpu_suite/<time>/
    bash benchmarks/gpu_suite.sh --out /tmp/suite1       # a fresh folder of your choice
    bash benchmarks/gpu_suite.sh --dry-run               # CPU smoke run, well under a minute
"""
