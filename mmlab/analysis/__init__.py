"""Metrics, linear probes and imbalance measures (MIR, DMC, joint-only accuracy)."""
from mmlab.analysis.metrics import accuracy, classification_metrics, macro_f1, mean_average_precision
from mmlab.analysis.imbalance import dmc, joint_only_accuracy, mir, mir_table
from mmlab.analysis.probe import extract_features, fit_probe, probe_encoders

__all__ = ["accuracy", "classification_metrics", "macro_f1", "mean_average_precision", "dmc",
           "joint_only_accuracy", "mir", "mir_table", "extract_features", "fit_probe", "probe_encoders"]
