"""Reading sources and earlier outputs, writing partitioned Parquet and small files (through
Hadoop FileSystem, so local disk, HDFS and object stores alike), and the code zip shipped to
executors."""
