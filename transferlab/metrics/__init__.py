"""Scores computed from features and predictions: label-free DA validators and transferability estimates."""
