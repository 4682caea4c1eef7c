"""Network descriptions: the float MobileNets (PyTorch) and their layers as Timeloop problems."""
