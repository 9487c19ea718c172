"""convsuite-semicon: wafer defect-map monitoring with submanifold sparse convolutions.

After Frittoli, Carrera, Rossi et al., "Deep Open-Set Recognition for Silicon Wafer Production
Monitoring" (Pattern Recognition, 2022).
"""
