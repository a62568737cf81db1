"""Models: timm architectures, weight sources, small-resolution adaptation, normalisation."""
from core.models.build import BuiltModel, build_model, timm_kwargs
from core.models.families import Family, family_of, patch_grid

__all__ = ["BuiltModel", "Family", "build_model", "family_of", "patch_grid", "timm_kwargs"]
