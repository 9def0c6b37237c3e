#!/bin/sh
cat /etc/greeting
echo "running on $(uname -m)"
