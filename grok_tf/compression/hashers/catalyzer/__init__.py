"""The Catalyzer: an MLP that spreads embeddings before 256-bit hashing.

GrokNet compresses its embeddings to 256-bit codes with the Catalyzer of
Sablayrolles et al.: a small network `f` maps an embedding `x` to the unit
sphere in `bits` dimensions, trained so that (1) neighbours in the input
space stay neighbours and (2) the outputs spread uniformly; the code is
then the signs of `f(x)`. Written from the paper:

    f(x)     = normalize(W3 relu(BN(W2 relu(BN(W1 x))))),   widths
               d -> hidden -> hidden -> bits
    L        = L_rank + lambda * L_koleo

One module per piece:

- `layer`: the `Catalyzer` layer, `build_catalyzer` (it as a model) and
  `catalyzer_codes` (packed signs of its outputs);
- `losses`: `koleo_terms` / `koleo_loss`, `triplet_rank_loss` and
  `CatalyzerLoss` (their per-example sum, across replicas);
- `training`: `build_catalyzer_trainer` (the siamese model),
  `train_catalyzer` (`model.fit` with triplets mined per epoch);
- `hasher`: `CatalyzerHasher`, the registered `"catalyzer"` hasher that
  `grok-tf compress` fits and the SavedModel serves.

Measured limitation: on 2640 real GrokNet embeddings (81 products, 400-d)
the Catalyzer's 256-bit sign codes still retrieve worse than ITQ's (val
k-NN recall@10 0.75 vs 0.83 with these defaults, 0.62 before): the MLP,
trained from scratch on so few points, does not keep the input geometry
(even its float outputs lose it: recall 0.79) and training longer makes it
worse. Started at ITQ's projection through a linear skip path (tried, not
kept), it fits the training neighbours better while val recall falls
(0.83 to 0.74 in 10 epochs): too few points to learn a map that
generalises. Hence the hasher's default is a linear Catalyzer
started at ITQ (`CatalyzerHasher`, `itq_start`); `hidden_layers=2,
init="random"` is the paper's network, for large training sets. With that
default, on the val splits of grocery and cars runs, the Catalyzer of each
of 5 seeds and the ITQ it starts from differ by at most 0.005 on average
in Recall@1/5/10 and mAP@R, less than ITQ's own spread over its seeds
(0.03-0.04): they hash equally well (`benchmarks/hash_quality.py
--seeds`, README "Product hashes").

Reference:
    Sablayrolles, Douze, Schmid, Jégou, "Spreading vectors for similarity
    search", ICLR 2019 (arXiv:1806.03198); Bell et al., "GrokNet: Unified
    Computer Vision Model Trunk and Embeddings For Commerce", KDD 2020.
"""

from grok_tf.compression.hashers.catalyzer.hasher import CatalyzerHasher
from grok_tf.compression.hashers.catalyzer.layer import Catalyzer
from grok_tf.compression.hashers.catalyzer.layer import build_catalyzer
from grok_tf.compression.hashers.catalyzer.layer import catalyzer_codes
from grok_tf.compression.hashers.catalyzer.losses import CatalyzerLoss
from grok_tf.compression.hashers.catalyzer.losses import koleo_loss
from grok_tf.compression.hashers.catalyzer.losses import koleo_terms
from grok_tf.compression.hashers.catalyzer.losses import triplet_rank_loss
from grok_tf.compression.hashers.catalyzer.training import (
    build_catalyzer_trainer,
)
from grok_tf.compression.hashers.catalyzer.training import default_negative_rank
from grok_tf.compression.hashers.catalyzer.training import itq_start
from grok_tf.compression.hashers.catalyzer.training import mine_negatives
from grok_tf.compression.hashers.catalyzer.training import sample_positives
from grok_tf.compression.hashers.catalyzer.training import train_catalyzer

__all__ = [
    "Catalyzer",
    "CatalyzerHasher",
    "CatalyzerLoss",
    "build_catalyzer",
    "build_catalyzer_trainer",
    "catalyzer_codes",
    "default_negative_rank",
    "itq_start",
    "koleo_loss",
    "koleo_terms",
    "mine_negatives",
    "sample_positives",
    "train_catalyzer",
    "triplet_rank_loss",
]
