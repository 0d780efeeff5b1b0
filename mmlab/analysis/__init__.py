"""Metrics, linear probes, imbalance measures (MIR, DMC, joint-only accuracy), retrieval
mAP, t-SNE embeddings / cluster scores and test-time noise robustness."""
from mmlab.analysis.metrics import accuracy, classification_metrics, macro_f1, mean_average_precision
from mmlab.analysis.imbalance import dmc, joint_only_accuracy, mir, mir_table
from mmlab.analysis.probe import PROBE_KINDS, extract_features, fit_probe, probe_encoders, probe_rows
from mmlab.analysis.retrieval import model_retrieval, retrieval_map, retrieval_rows, retrieval_table
from mmlab.analysis.embed import cluster_rows, cluster_scores, knn_loo_accuracy, tsne_embed, tsne_rows
from mmlab.analysis.robustness import noise_rows, noisy_accuracy, robustness_grid

__all__ = ["accuracy", "classification_metrics", "macro_f1", "mean_average_precision", "dmc",
           "joint_only_accuracy", "mir", "mir_table", "extract_features", "fit_probe", "probe_encoders",
           "retrieval_map", "retrieval_table", "model_retrieval", "retrieval_rows", "tsne_embed", "cluster_scores",
           "knn_loo_accuracy", "noisy_accuracy", "robustness_grid", "PROBE_KINDS", "probe_rows", "tsne_rows",
           "cluster_rows", "noise_rows"]
