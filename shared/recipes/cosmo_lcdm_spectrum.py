"""Compute the LCDM temperature spectrum that convsuite-cosmo ships (its simulator's default).

Planck 2018 best-fit parameters (TT,TE,EE+lowE+lensing; Planck Collaboration VI 2020, Table 2,
column 5): H0 67.36, ombh2 0.02237, omch2 0.1200, tau 0.0544, As 2.100e-9, ns 0.9649, one massive
neutrino of 0.06 eV. Lensed scalar TT, C_ell in muK^2 for ell = 0..6143 (3 * 2048 - 1, enough for
simulations up to Nside 2048), written as a text table with the parameters in its header.

Command (about 6 s on a 2-core CPU, camb 2.0.5):
    pip install "camb>=1.5" && python shared/recipes/cosmo_lcdm_spectrum.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import camb
import numpy as np

LMAX = 6143
PARAMETERS = {
    "H0": 67.36,
    "ombh2": 0.02237,
    "omch2": 0.1200,
    "tau": 0.0544,
    "As": 2.100e-9,
    "ns": 0.9649,
    "mnu": 0.06,
}
TARGET = Path(__file__).resolve().parents[2] / "packages/cosmo/src/convsuite/cosmo/data/lcdm_tt.txt"


def main() -> None:
    pars = camb.set_params(lmax=LMAX + 200, lens_potential_accuracy=1, **PARAMETERS)
    results = camb.get_results(pars)
    cl = results.get_cmb_power_spectra(pars, CMB_unit="muK", raw_cl=True, lmax=LMAX)["total"][:, 0]
    header = (
        f"LCDM lensed TT power spectrum C_ell [muK^2], ell = 0..{LMAX}; camb {camb.__version__}; "
        + ", ".join(f"{k}={v}" for k, v in PARAMETERS.items())
        + "; made by shared/recipes/cosmo_lcdm_spectrum.py"
    )
    tmp = TARGET.with_suffix(".part")
    np.savetxt(tmp, np.column_stack([np.arange(LMAX + 1), cl]), fmt=["%d", "%.6e"], header=header)
    os.replace(tmp, TARGET)
    print(
        f"wrote {TARGET} (C_2 = {cl[2]:.1f} muK^2, C_1000 = {cl[1000]:.3e} muK^2)", file=sys.stderr
    )


if __name__ == "__main__":
    main()
