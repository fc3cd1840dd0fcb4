"""The measurement: a task's arms evaluated on its test examples into a run store.

    experiment   aevaluate(task, options): index, model, arms prepared and run, resumable
    runner       the evaluation loop (test examples, and train examples an arm's prepare needs)
    executors    where test examples are answered: here (local) or on Ray actors (ray), with the same results
    rebuild      an arm a run measured, made again from the run (for serving, and for Ray workers)
    store        runs/<run_id>/: manifest.json and results.jsonl, append-only
    manifest     what a run ran, and its fingerprint
    backend      the model a task names, opened
"""
