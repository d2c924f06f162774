"""A synthetic stand-in for the real PUBG files: the same columns, sizes and structure.

The contest files cannot be downloaded, so `synthesize` makes data from a simple model of a
battle-royale match; docs/pubg-data.md says what it mimics of the real files and how.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .schema import FLOAT_COLUMNS, TEST_COLUMNS, TRAIN_COLUMNS

SPLITS = ("train", "test")
DEFAULT_ROWS = {"train": 1_500_000, "test": 500_000}
# The real training file has this many rows with kills, which is what the tutorial's dropna keeps.
COMPLETE_FRACTION = 635_716 / 1_500_000
# Part of the cache key: bump it whenever synthesize() would return different data.
GENERATOR_VERSION = 1

# A match: party_size is drawn per match, 100 players minus a few no-shows queue in, and they
# form game_size = players // party_size full teams. Each team has a latent strength; strength
# plus luck orders the teams' eliminations, which gives team_placement (a permutation of
# 1..game_size) and each team's survival time. A player lives up to the team's survival time
# (one teammate always lasts that long), spends the first minute or two in the plane and the
# parachute, and then walks, drives and fights: distances grow with time on the ground, the
# rate of kills with time on the ground and skill (team strength plus the player's own).
# Knock-downs, assists and damage follow from the kills; each kill has a distance around the
# player's own engagement range and a direction, whose x and y sides give the kill distances.

# Tuned against the figures in docs/pubg-data.md; changing any of them needs a new
# GENERATOR_VERSION, or caches would serve the old data.
PARTY_SIZES = (1, 2, 4)
PARTY_SHARES = (0.2, 0.3, 0.5)      # of matches: solo, duo, squad
NO_SHOW_MEAN, NO_SHOW_MAX = 15.0, 50  # players short of 100 in a match (exponential, capped)
LUCK = 0.6                          # sd of luck next to a team strength of sd 1
MATCH_MINUTES = 30.0
WALK_METRES_PER_MINUTE = 100.0
KILL_RATE = 0.8                     # with the next two: kills average ~0.89, and ~42.4% have any
SKILL_ON_KILLS = 0.65
KILL_BURST = 0.12
ENGAGEMENT_RANGE = 2000.0           # map units (1/100 m): a typical kill gap is ~20 m
MAP_SIZE = 800_000.0


def synthesize(split: str = "train", n_rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """A DataFrame with the real file's schema, from a simple model of a battle-royale match.

    split "train" gives the 16 TRAIN_COLUMNS, "test" the 15 TEST_COLUMNS; n_rows defaults to
    the real sizes, 1,500,000 and 500,000. Rows are sorted by match_id (from 0) and team_id
    (from 1); the last match is cut off at n_rows, so its teams' placements are a subset of
    1..game_size. Exactly round(n_rows * COMPLETE_FRACTION) players have kills (635,716 of
    the default 1,500,000, as in the real file), and only they have kill distances.
    player_name is even in train and odd in test, so names never repeat across the two.
    The same (split, n_rows, seed) always gives the same frame; train and test use
    different random streams.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if n_rows is None:
        n_rows = DEFAULT_ROWS[split]
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
        raise ValueError(f"n_rows must be a positive integer, not {n_rows!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    n_rows = int(n_rows)
    rng = np.random.default_rng([int(seed), SPLITS.index(split)])

    party, game = _matches(rng, n_rows)
    team_match, team_id, strength, placement = _teams(rng, game)
    team_party = party[team_match]
    team_of_player = np.repeat(np.arange(len(team_match)), team_party)[:n_rows]
    player_match = team_match[team_of_player]

    columns = {
        "match_id": player_match,
        "team_id": team_id[team_of_player],
        "game_size": game[player_match],
        "party_size": team_party[team_of_player],
    }
    columns.update(_players(rng, team_of_player, team_party, strength, placement,
                            game[team_match]))
    # Twice a shuffled row number, plus one in test: unique, and disjoint between the splits.
    columns["player_name"] = 2 * rng.permutation(n_rows) + SPLITS.index(split)
    columns["team_placement"] = placement[team_of_player]

    names = TRAIN_COLUMNS if split == "train" else TEST_COLUMNS
    return pd.DataFrame({name: columns[name].astype(
        np.float64 if name in FLOAT_COLUMNS else np.int64, copy=False) for name in names})


def _matches(rng, n_rows):
    """party_size and game_size of just enough matches to seat n_rows players."""
    # Every match seats at least 100 - NO_SHOW_MAX - 3 players, so this many always suffice.
    n_drawn = n_rows // (100 - NO_SHOW_MAX - 3) + 1
    party = rng.choice(np.array(PARTY_SIZES), size=n_drawn, p=PARTY_SHARES)
    no_shows = np.minimum(rng.exponential(NO_SHOW_MEAN, n_drawn).astype(np.int64), NO_SHOW_MAX)
    game = (100 - no_shows) // party
    n_matches = int(np.searchsorted(np.cumsum(game * party), n_rows)) + 1
    return party[:n_matches], game[:n_matches]


def _teams(rng, game):
    """For each team: its match, team_id, latent strength and placement (1 = winner)."""
    team_match = np.repeat(np.arange(len(game)), game)
    first_team = (np.cumsum(game) - game)[team_match]
    n_teams = len(team_match)
    strength = rng.standard_normal(n_teams)
    fortune = strength + LUCK * rng.standard_normal(n_teams)
    by_fortune = np.lexsort((-fortune, team_match))
    placement = np.empty(n_teams, dtype=np.int64)
    placement[by_fortune] = np.arange(n_teams) - first_team[by_fortune] + 1
    return team_match, np.arange(n_teams) - first_team + 1, strength, placement


def _players(rng, team_of_player, team_party, strength, placement, team_game):
    """The per-player columns from assists to kill distances (player_name aside)."""
    n = len(team_of_player)
    team = team_of_player
    # 0 for the first team out, 1 for the winner; eliminations thin out as the zone shrinks.
    rank = (team_game - placement) / (team_game - 1)
    team_minutes = MATCH_MINUTES * (0.04 + 0.96 * rank ** 1.5)
    # One teammate (the one with the largest draw) lasts as long as the team; the rest die earlier.
    lifespan = rng.beta(2.5, 1.0, n)
    team_starts = np.flatnonzero(np.r_[True, team[1:] != team[:-1]])
    longest = np.repeat(np.maximum.reduceat(lifespan, team_starts), np.diff(np.r_[team_starts, n]))
    share_of_team_time = lifespan / longest
    minutes = team_minutes[team] * share_of_team_time
    ground = np.maximum(minutes - rng.uniform(0.3, 1.5, n), 0.0)  # minus the plane and parachute

    walk = WALK_METRES_PER_MINUTE * ground * rng.lognormal(0.0, 0.4, n)
    # Teammates share a vehicle; a team that lives longer is more likely to find one, and drives
    # further.
    drive_odds = -3.0 + 4.0 * rank + 0.5 * (team_party > 1)
    drives = rng.random(len(rank)) < 1.0 / (1.0 + np.exp(-drive_odds))
    team_ride = np.where(drives, rng.lognormal(np.log(500.0 + 4000.0 * rank), 0.6), 0.0)
    ride = team_ride[team] * share_of_team_time * rng.lognormal(0.0, 0.3, n) * (ground > 0)

    skill = 0.6 * strength[team] + 0.8 * rng.standard_normal(n)
    kill_rate = KILL_RATE * np.exp(SKILL_ON_KILLS * skill) * (0.2 + ground / 20.0) * (ground > 0)
    # A won fight can take out more than one enemy (a whole team, say).
    fights_won = rng.poisson(kill_rate)
    kills = _with_exact_killer_count(fights_won + rng.poisson(KILL_BURST * fights_won), kill_rate)

    solo = team_party[team] == 1
    # In teams most kills start as a knock-down, and some knocks are finished by a teammate.
    dbno = np.where(solo, 0, rng.binomial(kills, 0.6) + rng.poisson(0.3 * kill_rate))
    assists = rng.poisson(np.where(solo, 0.1, 0.3) * kill_rate)
    damage = (70.0 * kills * rng.lognormal(0.0, 0.4, n) + 50.0 * dbno * rng.random(n)
              + rng.gamma(0.6, 80.0, n) * (0.2 + ground / 30.0) * (ground > 0))

    columns = {
        "player_assists": assists,
        "player_dbno": dbno,
        "player_dist_ride": np.round(ride, 6),
        "player_dist_walk": np.round(walk, 6),
        "player_dmg": np.round(damage).astype(np.int64),
        "player_kills": kills,
    }
    columns.update(_kill_distances(rng, kills))
    return columns


def _with_exact_killer_count(kills, kill_rate):
    """Nudge the fewest, least likely players so exactly COMPLETE_FRACTION have kills."""
    target = round(len(kills) * COMPLETE_FRACTION)
    killers = np.flatnonzero(kills > 0)
    excess = len(killers) - target
    kills = kills.copy()
    if excess > 0:
        kills[killers[np.argpartition(kill_rate[killers], excess - 1)[:excess]]] = 0
    elif excess < 0:
        others = np.flatnonzero(kills == 0)
        kills[others[np.argpartition(-kill_rate[others], -excess - 1)[:-excess]]] = 1
    return kills


def _kill_distances(rng, kills):
    """Smallest and largest x and y gap over each player's kills; NaN for players without."""
    n = len(kills)
    killer = kills > 0
    # Each kill happens at some distance around the player's own engagement range (weapon and
    # style), in some direction; x and y are the two sides of that distance.
    engagement_range = ENGAGEMENT_RANGE * rng.lognormal(0.0, 0.9, n)
    shooter = np.repeat(np.arange(n), kills)
    distance = engagement_range[shooter] * rng.lognormal(0.0, 0.5, len(shooter))
    direction = rng.uniform(0.0, np.pi / 2, len(shooter))
    first_kill = (np.cumsum(kills) - kills)[killer]
    columns = {}
    for axis, gaps in (("x", distance * np.cos(direction)), ("y", distance * np.sin(direction))):
        gaps = np.clip(np.round(gaps, 1), 0.1, MAP_SIZE)
        for suffix, reduce in (("min", np.minimum), ("max", np.maximum)):
            column = np.full(n, np.nan)
            column[killer] = reduce.reduceat(gaps, first_kill)
            columns[f"kill_distance_{axis}_{suffix}"] = column
    return columns
