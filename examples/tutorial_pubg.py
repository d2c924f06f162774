"""The tutorial's PUBG program, unchanged but for where the data comes from.

The tutorial reads pubg_train.csv and pubg_test.csv; this reads them too when they are in
the current folder, and otherwise uses ourdl's synthetic stand-in with the same schema.
Usage: python tutorial_pubg.py [ROWS]   (ROWS limits the synthetic training rows, for a quick run)
"""
import os
import sys

import numpy as np
import pandas as pd

from OurDL import *  # the tutorial's own line: ourdl under the name the tutorial gives it
from ourdl.datasets import pubg

rows = int(sys.argv[1]) if len(sys.argv) > 1 else None


def read(split):
    name = f"pubg_{split}.csv"
    if os.path.exists(name):
        return pd.read_csv(name)
    return pubg.synthesize(split, n_rows=rows if split == "train" else rows and rows // 3)


# 读取数据
df = read("train")
df = df.dropna(axis = 0, how = 'any')
data = df.iloc[:,2:].values
max_value = data.max(axis = 0)
data = data / max_value
print(data.shape)

x = [] # 数据输入节点
w = [] # 参数节点
m = [] # 乘法节点
a = [] # 加法节点
for i in range(13):
    x.append(Node())
    w.append(Node(Flag=1))
for i in range(13):
    m.append(MulNode(Papa = x[i], Mama = w[i]))
for i in range(12):
    if i == 0:
        a.append(AddNode(Papa = m[0], Mama = m[1]))
    else:
        a.append(AddNode(Papa = a[i-1], Mama = m[i+1]))
y = Node()
result = MSENode(Papa = a[11], Mama = y)

max_epochs = 1
now_step = 0
for epoch in range(max_epochs):
    for sample in data:
        for i in range(13):
            x[i].value = sample[i]
        y.value = sample[-1]
        result.forward()
        result.backward()
        now_step = now_step + 1
    print('Epoch:{}/{}, Step:{}'.format(epoch,max_epochs,now_step))

for i in range(13):
    print('第{}个参数的系数w{}是{}'.format(i,i,w[i].value))

df = read("test")
test_data = df.iloc[:,2:].values
test_data = test_data / max_value[:-1]
mean_value = data.mean(axis = 0)

predict_result = []
for i in range(len(test_data)):
    sample = test_data[i]
    for j in range(len(sample)):
        if np.isnan(sample[j]):
            sample[j] = mean_value[j]
    for i in range(13):
        x[i].value = sample[i]
    a[-1].forward()
    out = int(a[-1].value * max_value[-1])
    if out<=0:
        out = 1
    if out>=max_value[-1]:
        out = max_value[-1]
    predict_result.append(out)

predict_df = pd.DataFrame(predict_result, columns = ['team_placement'])
predict_df.to_csv('submission.csv',index = None)
print('wrote submission.csv')
