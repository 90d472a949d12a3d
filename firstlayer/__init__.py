"""firstlayer: what CNNs learn in their first layer (Chowers & Weiss, ICML 2023), as a library.

One room per workflow stage, named like its rule file (`rules/<stage>.smk` calls
`firstlayer/<stage>/`); imports run one way, from early rooms to late ones (a test walks them):

  errors, logs, h5io, intervals
              the foundation: one-line input errors, job logs and progress, atomic HDF5
              writes with provenance and format checks on read, means with 95% t intervals
  common/     planning, torch-free: config (validation with one-line errors), facts (torchvision
              datasets, pretrained stems), settings (label/input/optimiser/augmentation names
              and the "learned, unmanipulated" predicate), grid (RunSpec, run names),
              architectures (the networks' layer tables and each one's first-layer geometry),
              cost (FLOPs of a run and its cluster request: measured defaults or a calibration,
              start-up once per job), targets (the Plan: every target list), provenance
              (digests of code and user files as rule params), rehearsal (any grid at toy size,
              the plan it must share with the real grid, the Tables 1-3 rows it must fill)
  datasets/   sources: build the dataset HDF5 from torchvision (CelebA too), ImageFolder trees,
              .npz, subsets; synthetic (small copies of torchvision's datasets in its own file
              formats, with their checksums: the rehearsal's stand-ins)
  patches/    stats (exact streaming patch covariance and PCA), profiles (energy profiles and
              their correlations), features (per-image average patches and energies), strided
              (the patch statistics of a stride-k grid beside all positions')
  pretrained/ layers (first layers of torchvision models and user files), cli
              (`firstlayer-profile`)
  training/   models (CIFAR-style VGG/ResNet, a small ViT, a patchify-stem CNN), devices (GPU
              slots), manipulations (label settings, input transforms, augmentation), preflight
              (what a run checks before it reads its images), checkpoints (written by interval,
              resumed only for the same spec, data and code), run (one resumable training run:
              SGD or AdamW), analysis (profiles along training, Tables 1 and 2), estimate
              (compute and requests of a grid), calibrate (images/s of every network of a grid
              on this device), grant (the GPU grant check before a cluster run trains),
              standalone (a config's grid trained without Snakemake)
  theory/     formula (the linear-CNN formula and its fit), nulls (null families, the paper's
              tau range, intervals and verdicts), linear_cnn (the exact linear CNN), fits
              (Table 3), label_stats (Fig. 5), whitening (Fig. 6), manipulations (Figs. 8, 17,
              18 and the held-out rescaling prediction), clock (does training act through
              lr x steps?), recipes (each optimiser, augmentation and architecture against the
              paper's recipe)
  report/     plots, theory_plots (one function per figure), training_figures (the training
              figures by name), publish (committed results and the docs' generated blocks:
              markdown, paper, schema_doc, clock_blocks), compare (a rebuild against a
              published set), rehearsal (the check after a rehearsal)
"""

__version__ = "0.1.0"
