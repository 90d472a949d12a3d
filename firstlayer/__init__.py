"""firstlayer: what CNNs learn in their first layer (Chowers & Weiss, ICML 2023), as a library.

Modules, one concept each:
  datasets       build the dataset HDF5 from torchvision, ImageFolder trees or .npz files
  patches        exact streaming patch covariance, its eigendecomposition, changes of input space
  profiles       energy profiles of filter banks on a patch basis, and their correlations
  pretrained     first layers of torchvision models and of user files, and the input space they see
  models         CIFAR-style VGG and ResNet with a separately sized first layer
  manipulations  label settings and input transforms a run can apply to its training data
  training       one deterministic, resumable training run and its recorded first layer
  grid           the training grid as the union of experiment blocks
  analysis       profiles along training, Tables 1 and 2
  theory         the linear-CNN energy-profile formula and its fit
  plots          one function per figure
  config         configuration validation with one-line errors
  h5io           atomic HDF5 writes with provenance, format checks on read
  errors, logs, markdown, cli   input errors, job logs, README results, `firstlayer-profile`
"""
__version__ = "0.1.0"
