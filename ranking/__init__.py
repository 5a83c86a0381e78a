"""Ranking: training sets, candidate generators, shared feature transforms, LambdaRank, evaluation, model registry."""
