"""Building blocks shared by the SSC models (image backbones, necks, 3D convs, sparse blocks, heads)."""
