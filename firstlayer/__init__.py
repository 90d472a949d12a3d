"""firstlayer: what CNNs learn in their first layer (Chowers & Weiss, ICML 2023), as a library.

Modules, one concept each:
  datasets   build the dataset HDF5 from torchvision, ImageFolder trees or .npz files
  patches    exact streaming patch covariance, its eigendecomposition, changes of input space
  profiles   energy profiles of filter banks on a patch basis, and their correlations
  pretrained first layers of torchvision models and of user files, and the input space they see
  plots      one function per figure
"""
__version__ = "0.1.0"
