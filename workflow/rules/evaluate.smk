rule evaluate:
    input:
        scores=f"results/scores/{{dataset}}/{{method}}/{{inference}}/{EVAL_SPLIT}.parquet",
        taxonomy="data/shards/{dataset}/taxonomy.parquet",
    output:
        metrics="results/metrics/{dataset}/{method}/{inference}.json",
        curve="results/curves/{dataset}/{method}/{inference}.csv",
    params:
        shards=shards_dir,
    log:
        "logs/evaluate/{dataset}/{method}/{inference}.log",
    conda:
        "../../environment.yml"
    resources:
        runtime=60,
        mem_mb=8000,  # operating curve over every test sample and node (README: < 1 GB at iNat21 scale)
        cpus_per_task=1,
    shell:
        "taxonbench evaluate --scores {input.scores} --shards {params.shards}"
        " --out {output.metrics} --curve {output.curve} > {log} 2>&1"
