"""recurformer_torch: a PyTorch twin of the models recurformer writes (converted Llama-family and GPT-2 decoders
with recurrent heads), their folder format, the hybrid cache, and the two training stages (align, distill).

recurformer_torch.hf (imported on its own, needs transformers): the PreTrainedModel wrapper that
`recurformer export --format hf-torch` (recurformer_torch.hf_export) puts in a folder for AutoModelForCausalLM."""
from .config import ModelConfig, RecurformerSpec, config_from_hf, make_layout, parse_spec
from .cache import HybridCache
from .folder import load_folder, save_folder
from .model import RecurformerLM
from .recurrent import RecurrentHeads

__all__ = ["ModelConfig", "RecurformerSpec", "config_from_hf", "make_layout", "parse_spec", "HybridCache",
           "load_folder", "save_folder", "RecurformerLM", "RecurrentHeads"]
__version__ = "0.1.0"
