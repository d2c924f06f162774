"""The tutorial's first program: three inputs, three weights, four training steps.

Unchanged from the tutorial, its import line included (the OurDL module is ourdl under the
tutorial's name); it prints the tutorial's numbers.
"""
from OurDL import *
x1 = Node(Value = 1.1) # 给一点小小的扰动
x2 = Node(Value = 2)
x3 = Node(Value = 3)
w1 = Node(Value = 1, Flag=1)
w2 = Node(Value = 1, Flag=1)
w3 = Node(Value = 1, Flag=1)
m1 = MulNode(Papa = x1, Mama = w1)
m2 = MulNode(Papa = x2, Mama = w2)
m3 = MulNode(Papa = x3, Mama = w3)
a1 = AddNode(Papa = m1, Mama = m2)
a2 = AddNode(Papa = a1, Mama = m3)
y = Node(Value = 6) # 1+2+3 = 6, 这样MSE的结果为0
result = MSENode(Papa = a2, Mama = y, Value = 20)
print('计算前 result.value = ', result.value)
result.forward()
print('计算后 result.value = ', result.value)
result.backward()
print('第一次更新后 w1.value = ', w1.value)
result.forward()
print('第一次更新后 result.value = ', result.value)
result.backward()
print('第二次更新后 w1.value = ', w1.value)
result.forward()
print('第二次更新后 result.value = ', result.value)
result.backward()
print('第三次更新后 w1.value = ', w1.value)
result.forward()
print('第三次更新后 result.value = ', result.value)
result.backward()
print('第四次更新后 w1.value = ', w1.value)
result.forward()
print('第四次更新后 result.value = ', result.value)
