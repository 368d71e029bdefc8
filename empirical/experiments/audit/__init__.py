"""The audit: per-unit trust verdicts (detectors, calibration, the manipulation zoo, the bench)."""
