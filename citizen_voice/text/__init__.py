"""Text intelligence on work-order texts with jieba: segmentation, keywords, classification, hot
topics, early warnings and repeat demands. See README.md in this folder for the methods."""
