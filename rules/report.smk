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
        files=PUBLISHED,
    script:
        "../scripts/publish.py"
