import warnings

import jax

# float64 parity needs x64; float32 cases pass explicit float32 arrays.
jax.config.update("jax_enable_x64", True)
warnings.filterwarnings("ignore", message="size_average and reduce args will be deprecated")
warnings.filterwarnings("ignore", message="reduction: 'mean' divides the total loss")
warnings.filterwarnings("ignore", message=".*will be broadcast")
