"""DataModules and datasets: splits, transforms, loaders and the feature cache (importing only ``contracts``)."""
