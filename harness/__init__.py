"""l2chaos"""
