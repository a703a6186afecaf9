"""The sandbox city (沙盒城市): a deterministic generator of department systems' data, with its
ground truth, and the servers that expose those systems on 127.0.0.1."""
