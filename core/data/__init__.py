"""Data: data sets as uint8 images, [0,1] on the way in; augmentation; resumable batches."""
from core.data.augment import Mixer, RandAugment, crop_flip
from core.data.loader import steps_per_epoch, train_batches
from core.data.sets import DATASETS, Splits, load_splits, train_indices

__all__ = ["DATASETS", "Mixer", "RandAugment", "Splits", "crop_flip", "load_splits",
           "steps_per_epoch", "train_batches", "train_indices"]
