# Publishing: the committed results under docs/results/ and the docs' generated blocks.


rule publish:
    """Copy this config's tables and figures into docs/results/{publish}/ (with a manifest of
    their sources) and regenerate the docs' generated blocks from them."""
    input:
        list(PUBLISHED),
    output:
        manifest=f"docs/results/{config['publish']}/published.json",
        files=[f"docs/results/{config['publish']}/{name}" for name in PUBLISHED.values()],
    log:
        "logs/publish.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=1000,
    params:
        code=code("publish.py"),
        files=PUBLISHED,
    script:
        "../scripts/publish.py"


rule publish_pretrained:
    """Copy the pretrained study's fits, profiles and figure (after `snakemake pretrained`)
    into docs/results/pretrained/ with a manifest, and regenerate the docs' generated blocks."""
    input:
        list(PUBLISHED_PRETRAINED),
    output:
        manifest="docs/results/pretrained/published.json",
        files=[f"docs/results/pretrained/{name}" for name in PUBLISHED_PRETRAINED.values()],
    log:
        "logs/publish_pretrained.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=1000,
    params:
        code=code("publish.py"),
        files=PUBLISHED_PRETRAINED,
    script:
        "../scripts/publish.py"


rule rehearsal_check:
    """Rehearsal: every figure and table the grid promises exists, Tables 1-3 have each row the
    grid feeds with a finite value and its n, and the plan matches the real grid's."""
    input:
        files=PLAN.default_targets() + list(PUBLISHED),
        tables="results/tables/training/tables.csv",
        table3="results/tables/theory/table3.csv",
    output:
        rehearsal.CHECK,
    log:
        "logs/rehearsal_check.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=1000,
    params:
        code=code("rehearsal_check.py"),
        files=lambda wc, input: sorted(set(input.files)),
        expected=lambda wc: rehearsal_expected(),
        real=lambda wc: REAL_SIGNATURE,
        rehearsal=lambda wc: rehearsal.plan_signature(PLAN),
    script:
        "../scripts/rehearsal_check.py"
