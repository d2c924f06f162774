"""The columns of the real pubg_train.csv and pubg_test.csv, which every part of the package shares.

What is known about them, and how the synthetic data follows them: docs/pubg-data.md.
"""
TRAIN_COLUMNS = (
    "match_id", "team_id", "game_size", "party_size", "player_assists", "player_dbno",
    "player_dist_ride", "player_dist_walk", "player_dmg", "player_kills", "player_name",
    "kill_distance_x_min", "kill_distance_x_max", "kill_distance_y_min", "kill_distance_y_max",
    "team_placement",
)
TEST_COLUMNS = TRAIN_COLUMNS[:-1]
TARGET = "team_placement"
# The tutorial's df.iloc[:, 2:] minus the target: player_name stays in, as the tutorial has it.
FEATURES = TRAIN_COLUMNS[2:-1]
KILL_DISTANCE_COLUMNS = TRAIN_COLUMNS[11:15]
FLOAT_COLUMNS = ("player_dist_ride", "player_dist_walk") + KILL_DISTANCE_COLUMNS
INT_COLUMNS = tuple(name for name in TRAIN_COLUMNS if name not in FLOAT_COLUMNS)
