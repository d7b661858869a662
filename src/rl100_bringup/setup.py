from glob import glob

from setuptools import setup

package_name = 'rl100_bringup'

setup(
    name=package_name,
    version='0.1.0',
    packages=[package_name],
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.xml')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='rl100 maintainers',
    maintainer_email='maintainers@rl100.dev',
    description=(
        'Bringup of the rl100 node graphs: launch files, parameter files, and a '
        'supervisor that starts the same graph where ROS 2 launch is missing.'
    ),
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'up = rl100_bringup.up:main',
            'run_episodes = rl100_bringup.run_episodes:main',
        ],
    },
)
