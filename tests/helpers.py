"""Helpers that several test files share: running `ourdl pubg` in-process, reading what it
printed and left behind, small files in the real PUBG format, and the tutorial's PUBG
network built node by node."""
import collections
import re

from ourdl import AddNode, MSENode, MulNode, Node
from ourdl import cli


def run(capsys, *argv):
    """`ourdl pubg *argv` in-process: (exit code, stdout, stderr)."""
    code = cli.main(["pubg", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def messages(err):
    """stderr without the progress bar, which redraws itself with carriage returns."""
    pieces = re.split(r"[\r\n]", err)
    return [piece for piece in pieces if piece.strip() and not piece.startswith("training:")]


def outputs(folder):
    """Every file the command could have left behind (the cache aside)."""
    return sorted(p.name for p in folder.iterdir() if p.name != "cache")


# The first five rows of the real training file (docs/pubg-data.md); player_name was printed as
# "?", so numbers stand in for it.
REAL_ROWS = """\
match_id,team_id,game_size,party_size,player_assists,player_dbno,player_dist_ride,player_dist_walk,player_dmg,player_kills,player_name,kill_distance_x_min,kill_distance_x_max,kill_distance_y_min,kill_distance_y_max,team_placement
0,1,50,2,0,1,4984.54900,2054.031490,218,2,{0},1689.9,3992.9,137.0,819.8,5
0,1,50,2,1,0,5960.46436,2268.221000,125,0,{1},,,,,5
0,2,50,2,0,0,0.00000,0.000000,0,0,{2},,,,,49
0,2,50,2,0,0,0.00000,5.211829,41,0,{3},,,,,49
0,3,50,2,0,0,0.00000,341.730927,69,0,{4},,,,,34
"""
REAL_CSV = REAL_ROWS.format(101, 102, 103, 104, 105)
REAL_TEST_CSV = "\n".join(line.rsplit(",", 1)[0] for line in REAL_CSV.splitlines()) + "\n"


Network = collections.namedtuple("Network", "x w y prediction loss")


def build_network(n_features=13, lr=0.01):
    """The tutorial's n -> 1 linear PUBG network, wired and named as the tutorial wires it:
    x[i] = Node(), w[i] = Node(Flag=1, lr=lr), m[i] = MulNode(x[i], w[i]), a chain of AddNodes
    a[i] summing the m[i] into the prediction, y = Node() and result = MSENode(prediction, y)."""
    x = [Node(name=f"x[{i}]") for i in range(n_features)]
    w = [Node(Flag=1, lr=lr, name=f"w[{i}]") for i in range(n_features)]
    m = [MulNode(Papa=x_i, Mama=w_i, name=f"m[{i}]") for i, (x_i, w_i) in enumerate(zip(x, w))]
    prediction = m[0]
    for i, m_i in enumerate(m[1:]):
        prediction = AddNode(Papa=prediction, Mama=m_i, name=f"a[{i}]")
    y = Node(name="y")
    return Network(x, w, y, prediction, MSENode(Papa=prediction, Mama=y, name="result"))
