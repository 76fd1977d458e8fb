// placeholder localStorage
