rule evaluate:
    # inference that produces node scores: every node-score metric family, and the operating curve
    wildcard_constraints:
        inference=CURVED_PATTERN,
    input:
        unpack(evaluate_inputs),
    output:
        metrics="results/metrics/{dataset}/{method}/{inference}.json",
        curve="results/curves/{dataset}/{method}/{inference}.csv",
    params:
        shards=shards_dir,
        roles=role_arguments,
    log:
        "logs/evaluate/{dataset}/{method}/{inference}.log",
    conda:
        "../../environment.yml"
    resources:
        runtime=60,
        mem_mb=8000,  # operating curve over every test sample and node (docs/testing.md, bench/metrics.py: about 1 GB at iNat21 scale)
        cpus_per_task=1,
    shell:
        "taxonbench evaluate --scores {input.eval} {params.roles} --shards {params.shards}"
        " --out {output.metrics} --curve {output.curve} > {log} 2>&1"


rule evaluate_without_curve:
    # inference that produces set predictions or embeddings: the families that read them, no curve
    wildcard_constraints:
        inference=UNCURVED_PATTERN,
    input:
        unpack(evaluate_inputs),
    output:
        metrics="results/metrics/{dataset}/{method}/{inference}.json",
    params:
        shards=shards_dir,
        roles=role_arguments,
    log:
        "logs/evaluate/{dataset}/{method}/{inference}.log",
    conda:
        "../../environment.yml"
    resources:
        runtime=60,
        mem_mb=8000,
        cpus_per_task=1,
    shell:
        "taxonbench evaluate --scores {input.eval} {params.roles} --shards {params.shards}"
        " --out {output.metrics} > {log} 2>&1"
