"""Agreement-filtered exports: PKU-SafeRLHF shapes, DPO pairs and raw annotations."""
