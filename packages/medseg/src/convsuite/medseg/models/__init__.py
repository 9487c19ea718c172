"""Networks of convsuite-medseg: :mod:`.hybridgnet` (HybridGNet, registered as "hybridgnet") and
:mod:`.pixel_baseline` (the U-Net baseline, "unet_baseline"); :mod:`.contour_graph` is HybridGNet's
landmark graph. Import them from their modules or from :mod:`convsuite.medseg`."""
